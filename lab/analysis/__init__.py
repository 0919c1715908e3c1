"""What a run changed: the timeline, the forgetting meter, learned tokens, influence, the cost estimate."""
