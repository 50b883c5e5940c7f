"""Customer segments: named RFM segments (from the dbt customers mart) plus k-means clusters with
readable profiles (`ml.segments`, `ml.segment_profiles`)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

from pulse.config import Settings
from pulse.db import engine

N_CLUSTERS = 5
# Feature -> (what a high value means, what a low value means), to name clusters in plain words.
PROFILE_FEATURES = {
    "days_since_last_order": ("lapsed", "recent buyers"),
    "orders_total": ("frequent buyers", "rare buyers"),
    "revenue_total": ("high spenders", "low spenders"),
    "page_views_30d": ("active browsers", "quiet browsers"),
    "email_opens_30d": ("email engaged", "email cold"),
}


def cluster_label(z_scores: pd.Series) -> str:
    """The two most distinctive traits of a cluster centre (z-scores against all customers)."""
    top = z_scores.abs().sort_values(ascending=False).index[:2]
    return ", ".join(PROFILE_FEATURES[f][0] if z_scores[f] > 0 else PROFILE_FEATURES[f][1] for f in top)


def segment(as_of: datetime, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    columns = ", ".join(f"f.{c}" for c in PROFILE_FEATURES)
    query = sa.text(
        f"""
        select f.customer_id, {columns}, coalesce(c.rfm_segment, 'prospects') as rfm_segment
        from marts.customer_features f
        left join marts.customers c using (customer_id)
        where f.event_timestamp = :t
        order by f.customer_id
        """
    )
    with engine(settings).connect() as conn:
        data = pd.read_sql(query, conn, params={"t": as_of})
    features = data[list(PROFILE_FEATURES)].astype(float).fillna(0.0)
    k = min(N_CLUSTERS, len(data))
    scaled = StandardScaler().fit_transform(np.log1p(features.clip(lower=0)))
    model = KMeans(n_clusters=k, n_init=10, random_state=0).fit(scaled)
    centres = pd.DataFrame(model.cluster_centers_, columns=list(PROFILE_FEATURES))
    # Number clusters by size so the same data gives the same numbering.
    sizes = np.bincount(model.labels_, minlength=k)
    order = np.argsort(-sizes, kind="stable")
    renumber = {old: new for new, old in enumerate(order)}
    labels = {renumber[i]: cluster_label(centres.iloc[i]) for i in range(k)}
    data["cluster"] = [renumber[c] for c in model.labels_]
    members = pd.DataFrame(
        {
            "customer_id": data["customer_id"],
            "as_of": as_of,
            "rfm_segment": data["rfm_segment"],
            "cluster": data["cluster"],
            "cluster_label": data["cluster"].map(labels),
        }
    )
    profiles = pd.DataFrame(
        [
            {
                "as_of": as_of,
                "cluster": cluster,
                "cluster_label": labels[cluster],
                "customers": int((data["cluster"] == cluster).sum()),
                "profile": features[data["cluster"] == cluster].mean().round(3).to_json(),
            }
            for cluster in sorted(labels)
        ]
    )
    return members, profiles


def write_segments(as_of: datetime, settings: Settings) -> int:
    members, profiles = segment(as_of, settings)
    with engine(settings).begin() as conn:
        conn.execute(sa.text("delete from ml.segments where as_of = :t"), {"t": as_of})
        conn.execute(sa.text("delete from ml.segment_profiles where as_of = :t"), {"t": as_of})
        members.to_sql(
            "segments", conn, schema="ml", if_exists="append", index=False, method="multi", chunksize=3000
        )
        conn.execute(
            sa.text(
                "insert into ml.segment_profiles (as_of, cluster, cluster_label, customers, profile) "
                "values (:as_of, :cluster, :cluster_label, :customers, cast(:profile as jsonb))"
            ),
            profiles.to_dict("records"),
        )
    return len(members)
