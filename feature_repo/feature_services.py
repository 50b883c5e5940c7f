"""Feast feature services: one per model version, so a model always reads the features it was trained on."""

from feast import FeatureService
from feature_views import customer_activity

purchase_propensity_v1 = FeatureService(
    name="purchase_propensity_v1",
    features=[customer_activity],
    description="Features of the purchase-propensity model, version 1.",
    owner="data-team@pulse.example",
    tags={"model": "purchase_propensity"},
)

churn_v1 = FeatureService(
    name="churn_v1",
    features=[customer_activity],
    description="Features of the churn model (past buyers with no order in the next 90 days), version 1.",
    owner="data-team@pulse.example",
    tags={"model": "churn_90d"},
)

value_v1 = FeatureService(
    name="value_v1",
    features=[customer_activity],
    description="Features of the predicted-value model (revenue in the next 90 days), version 1.",
    owner="data-team@pulse.example",
    tags={"model": "value_90d"},
)
