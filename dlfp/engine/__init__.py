"""The training machinery every study shares: the one driver (``driver.fit``), updates, lr
schedules, EMA, checkpoints, the metric log, device and thread setup."""
