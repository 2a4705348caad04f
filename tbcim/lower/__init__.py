"""Lower level of TBCIM (section IV): client selection, data quality, costs, Stackelberg pricing."""
