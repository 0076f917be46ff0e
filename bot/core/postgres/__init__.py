"""The PostgreSQL engine: its migrations' runner, connections and the store parts built so far (guild state)."""
