"""Every matplotlib figure of the project, and nothing else. Figures render off-screen (Agg)."""

import matplotlib

matplotlib.use("Agg")
