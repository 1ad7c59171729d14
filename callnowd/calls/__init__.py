"""The call-request use case and its state machine."""
