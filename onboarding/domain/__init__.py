"""What reads and writes share, below both: `rules` (the change a company needs, a usable certificate,
the active representative, invitation tokens; reads allowed, never a write) and `display` (how
things are named to people; no queries)."""
