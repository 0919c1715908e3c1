"""The workshop around the lab: claim checks for notebooks, learner editions, diagnosis exercises."""
