"""Campaign activation: keep destinations (webhooks, files, ad and email platforms) in step with audiences.

- `destinations/`: one module per destination behind `destinations.base.Destination`.
- `delivery`: retries, rate limit, concurrency and bad-row isolation, the same for every destination.
- `runlog`: `activation.sync_runs` / `activation.sync_records`.
- `syncs`: the YAML syncs in `campaigns/syncs/`; `engine`: plan (diff) and run a sync; `checkpoint`:
  each answered batch into the run log and the sync's state.
"""
