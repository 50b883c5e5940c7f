"""Scores: `batch` scores every customer into `ml.scores` (`pulse score`), `api` answers
`GET /v1/scores/{customer_id}` from the online store (part of `pulse serve`). Import the one you need:
the API stays free of the batch side's imports."""
