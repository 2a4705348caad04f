"""On-chain part of TBCIM (section II-A): fixed-point codec and clients for the contracts."""
