"""What a person sees of it: plots, tables, word diffs and the one-file report."""
