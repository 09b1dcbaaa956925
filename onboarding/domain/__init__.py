"""Pure domain rules (no queries, no requests): how things are named and shown to people."""
