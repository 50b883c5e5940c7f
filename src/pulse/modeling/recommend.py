"""Next-category recommendations from category co-occurrence (`ml.recommendations`).

Customers who buy from category A also buy from B: item-item cosine similarity over the customer x
category purchase matrix. A customer's interest vector (their purchases, plus the category they browse
most) is spread through that similarity; categories they already bought are excluded, and the top three
remaining are the recommendations (cross-sell). Customers with no signal get the most popular categories.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa

from pulse.config import Settings
from pulse.db import engine

TOP_N = 3
BROWSE_WEIGHT = 0.5


def interactions(as_of: datetime, settings: Settings) -> pd.DataFrame:
    """(customer_id, category, weight): purchases before `as_of` plus each customer's preferred category."""
    query = sa.text(
        """
        select customer_id, product_category as category, count(*)::float as weight
        from marts.order_lines
        where ordered_at < :as_of and product_category is not null
        group by 1, 2
        union all
        select customer_id, preferred_category, :browse
        from marts.customers
        where preferred_category is not null
        """
    )
    with engine(settings).connect() as conn:
        return pd.read_sql(query, conn, params={"as_of": as_of, "browse": BROWSE_WEIGHT})


def recommend(customers: list[str], as_of: datetime, settings: Settings) -> pd.DataFrame:
    """Top-3 categories per customer: (customer_id, as_of, rank, category, score)."""
    data = interactions(as_of, settings)
    if data.empty:
        return pd.DataFrame(columns=["customer_id", "as_of", "rank", "category", "score"])
    matrix = data.pivot_table(
        index="customer_id", columns="category", values="weight", aggfunc="sum", fill_value=0.0
    )
    categories = np.asarray(matrix.columns)
    bought = (matrix.to_numpy() >= 1).astype(float)  # whole purchases, not the browse weight
    norms = np.linalg.norm(bought, axis=0)
    similarity = (bought.T @ bought) / np.outer(np.maximum(norms, 1e-9), np.maximum(norms, 1e-9))
    np.fill_diagonal(similarity, 0.0)
    popularity = bought.sum(axis=0) / max(bought.sum(), 1.0)

    vectors = matrix.reindex(pd.Index(customers, name="customer_id"), fill_value=0.0).to_numpy()
    scores = vectors @ similarity + 1e-3 * popularity  # popularity breaks ties and covers cold starts
    already = vectors >= 1
    scores[already] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :TOP_N]
    rows = [
        (customer, as_of, rank + 1, categories[j], float(scores[i, j]))
        for i, customer in enumerate(customers)
        for rank, j in enumerate(top[i])
        if np.isfinite(scores[i, j])
    ]
    return pd.DataFrame(rows, columns=["customer_id", "as_of", "rank", "category", "score"])


def write_recommendations(customers: list[str], as_of: datetime, settings: Settings) -> int:
    frame = recommend(customers, as_of, settings)
    with engine(settings).begin() as conn:
        conn.execute(sa.text("delete from ml.recommendations where as_of = :t"), {"t": as_of})
        if frame.empty:  # no categories in the data (e.g. orders imported without products)
            return 0
        frame["score"] = frame["score"].astype(float).round(10)
        frame.to_sql(
            "recommendations",
            conn,
            schema="ml",
            if_exists="append",
            index=False,
            method="multi",
            chunksize=3000,
        )
    return len(frame)
