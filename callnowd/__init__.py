"""callnowd: a CallNow center for Asterisk PBXs.

Every extension gets a public web link; a visitor leaves a name and a phone number;
callnowd rings the extension's owner, lets him accept or decline, and calls the
visitor back from the owner's external number.
"""

__version__ = "0.1.0"
