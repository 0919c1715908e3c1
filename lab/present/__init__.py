"""What a person sees of it: plots, tables, word diffs and the one-file report."""

PAGE_STYLE = """
body { font-family: system-ui, sans-serif; font-size: 14px; color: #1f2328; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 22px; } h2 { font-size: 17px; border-bottom: 1px solid #d1d9e0; padding-bottom: 4px; }
table { border-collapse: collapse; margin: 6px 0 12px 0; }
th, td { border: 1px solid #d1d9e0; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
ins { background: rgba(45, 164, 78, 0.22); text-decoration: none; }
del { background: rgba(207, 34, 46, 0.16); } .muted { color: #59636e; }
"""  # the style of the lab's one-file HTML pages (the run report, the class gallery's export)
