"""Signal models: each maps a sequence and tissue parameters to fingerprints and exact Jacobians."""
