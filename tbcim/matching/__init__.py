"""The second paper's multi-buyer FL service market: Opt, Subopt and the baselines."""
