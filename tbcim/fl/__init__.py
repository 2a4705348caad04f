"""Federated learning for TBCIM (section II-A, V): data, partitions, models, clients, attacks."""
