# The twistd plugin: one ServiceMaker, importing callnowd lazily (twistd imports every
# plugin module on each run, so this file must stay tiny and import-safe).
from twisted.application.service import ServiceMaker

callnow = ServiceMaker(
    "callnow",
    "callnowd.tap",
    "CallNow center for Asterisk: public call-me-back links per extension",
    "callnow",
)
