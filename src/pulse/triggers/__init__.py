"""Real-time triggered campaigns: definitions, durable timers, evaluation on the stream, dispatch."""
