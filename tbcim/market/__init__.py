"""The market: composes the chain, the lower level, the auction and FL into runs (layer 3)."""
