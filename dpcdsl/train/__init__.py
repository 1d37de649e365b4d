"""Training: tasks, datasets, the feature cache and mIOU (``data``), the order of
batches and divergence (``training``), weight files (``weightfile``), progress lines
(``progress``), and the proxy task (``proxy``), which trains candidate heads on cached
backbone features through a backend."""
