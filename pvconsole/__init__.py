"""pvconsole: a PVAccess face and an operator console for pcaspy IOCs."""

__version__ = "0.1.0"
