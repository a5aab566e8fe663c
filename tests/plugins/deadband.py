"""Changes pcaspy keeps from CA monitors: within a monitor deadband, or made without
updatePVs, and metadata set without updatePVs (echo driver)."""

prefix = "DB:"
pvdb = {
    "MDEL": {"mdel": 100},
    "NOUPD": {"type": "int"},
    "INFO": {"unit": "mm", "prec": 1, "hilim": 10},
}
