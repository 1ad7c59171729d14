"""HTTP adapters: public CallNow pages, status pages, health."""
