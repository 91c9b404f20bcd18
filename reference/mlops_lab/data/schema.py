"""The one schema of a card transaction.

The serving request model, the training pipeline's column lists and the pipeline's data
validation are all derived from `SCHEMA`, so adding a feature is a one-line change here.

    python -m mlops_lab.data.schema      # prints the schema as a table
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # pandas only to check a frame: the model server imports SCHEMA without it
    import pandas as pd

Kind = Literal["numeric", "categorical"]

LABEL = "is_fraud"
ENTITY = "card_id"  # not a model feature: the router uses it for sticky routing


@dataclass(frozen=True)
class Feature:
    name: str
    kind: Kind
    description: str
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False
    # Closed vocabularies are enforced (unknown values are a client error). Open ones
    # (country) accept anything matching `pattern` and the model treats unseen values as unknown.
    categories: tuple[str, ...] = ()
    closed: bool = True
    pattern: str | None = None
    # Nullable features may be null in a request (the model imputes them); batches are still
    # checked for how many nulls they carry (see Schema.problems).
    nullable: bool = False


@dataclass(frozen=True)
class Schema:
    features: tuple[Feature, ...]
    label: str = LABEL
    entity: str = ENTITY
    _by_name: dict[str, Feature] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.features})

    def __getitem__(self, name: str) -> Feature:
        return self._by_name[name]

    @property
    def names(self) -> list[str]:
        return list(self._by_name)  # insertion order = schema order

    @property
    def numeric(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]

    def problems(self, frame: pd.DataFrame, max_null_fraction: float = 0.0) -> list[str]:
        """Every way `frame` breaks the schema, in plain words (empty list: valid).

        The retraining pipeline's validate step and the batch CLI both use this; the
        serving request model enforces the same rules per request.
        """
        import numpy as np
        import pandas as pd

        out: list[str] = []
        missing = [n for n in self.names if n not in frame.columns]
        if missing:
            out.append(f"missing columns: {', '.join(missing)}")
        for feat in self.features:
            if feat.name not in frame.columns:
                continue
            col = frame[feat.name]
            nulls = float(col.isna().mean()) if len(col) else 0.0
            if nulls > max_null_fraction:
                out.append(f"{feat.name}: {nulls:.1%} missing values (allowed {max_null_fraction:.1%})")
            present = col.dropna()
            if feat.kind == "numeric":
                if not pd.api.types.is_numeric_dtype(col):
                    out.append(f"{feat.name}: expected numbers, got dtype {col.dtype}")
                    continue
                values = present.to_numpy(dtype=float)
                if not np.isfinite(values).all():
                    out.append(f"{feat.name}: contains inf")
                if feat.minimum is not None and (values < feat.minimum).any():
                    out.append(f"{feat.name}: values below {feat.minimum}")
                if feat.maximum is not None and (values > feat.maximum).any():
                    out.append(f"{feat.name}: values above {feat.maximum}")
            elif feat.closed:
                unknown = sorted(set(present.astype(str)) - set(feat.categories))
                if unknown:
                    out.append(f"{feat.name}: unknown categories {unknown[:5]}")
        return out


MERCHANT_CATEGORIES = (
    "grocery",
    "restaurants",
    "fuel",
    "online_retail",
    "electronics",
    "travel",
    "jewelry",
    "gambling",
)
CHANNELS = ("card_present", "contactless", "online")
COUNTRIES = ("US", "CA", "GB", "DE", "FR", "MX", "BR", "NG", "RO", "CN")
DEVICE_OS = ("ios", "android", "web", "other")

SCHEMA = Schema(
    features=(
        Feature("amount", "numeric", "transaction amount in US dollars", minimum=0.0, maximum=1_000_000.0),
        Feature("merchant_category", "categorical", "merchant category", categories=MERCHANT_CATEGORIES),
        Feature("channel", "categorical", "how the card was used", categories=CHANNELS),
        Feature(
            "country",
            "categorical",
            "ISO 3166 alpha-2 country of the merchant",
            categories=COUNTRIES,
            closed=False,
            pattern=r"^[A-Z]{2}$",
        ),
        Feature("hour", "numeric", "local hour of day", minimum=0, maximum=23, integer=True),
        Feature(
            "account_age_days",
            "numeric",
            "age of the card account",
            minimum=0,
            maximum=36_500,
            integer=True,
            nullable=True,
        ),
        Feature(
            "txn_count_24h",
            "numeric",
            "transactions on this card in 24h",
            minimum=0,
            maximum=10_000,
            integer=True,
        ),
        Feature(
            "distance_from_home_km",
            "numeric",
            "distance from the cardholder's home",
            minimum=0.0,
            maximum=20_100.0,
            nullable=True,
        ),
        Feature("device_os", "categorical", "device OS (the ground truth ignores it)", categories=DEVICE_OS),
    )
)


if __name__ == "__main__":
    for f in SCHEMA.features:
        extra = f.categories if f.kind == "categorical" else (f.minimum, f.maximum)
        print(f"{f.name:24} {f.kind:12} {extra}")
