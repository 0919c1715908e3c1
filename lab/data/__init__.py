"""Data in: records read from every format, validated and reviewed; the workshop's starter sets."""
