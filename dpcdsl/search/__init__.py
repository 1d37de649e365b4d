"""The search engine: Optuna holds the state, strategies are Optuna samplers, executors
run the trials, and a report shows the results."""
