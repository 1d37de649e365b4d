"""Data for the proxy task: task files, datasets, the feature cache and mIOU. Framework
free: numpy only; backbones and trainers live in the backends."""
