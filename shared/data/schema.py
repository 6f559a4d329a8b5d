"""Columns and types of the public H&M files (Kaggle "H&M Personalized Fashion Recommendations")."""

from __future__ import annotations

ARTICLES_FILE = "articles.csv"
CUSTOMERS_FILE = "customers.csv"
TRANSACTIONS_FILE = "transactions_train.csv"

ARTICLE_ID_LEN = 10

# Integer code columns of articles.csv; everything else there is text.
ARTICLE_INT_COLUMNS: tuple[str, ...] = (
    "product_code",
    "product_type_no",
    "graphical_appearance_no",
    "colour_group_code",
    "perceived_colour_value_id",
    "perceived_colour_master_id",
    "department_no",
    "index_group_no",
    "section_no",
    "garment_group_no",
)

ARTICLE_COLUMNS: tuple[str, ...] = (
    "article_id",
    "product_code",
    "prod_name",
    "product_type_no",
    "product_type_name",
    "product_group_name",
    "graphical_appearance_no",
    "graphical_appearance_name",
    "colour_group_code",
    "colour_group_name",
    "perceived_colour_value_id",
    "perceived_colour_value_name",
    "perceived_colour_master_id",
    "perceived_colour_master_name",
    "department_no",
    "department_name",
    "index_code",
    "index_name",
    "index_group_no",
    "index_group_name",
    "section_no",
    "section_name",
    "garment_group_no",
    "garment_group_name",
    "detail_desc",
)
# Text columns that may legitimately be empty in real copies.
ARTICLE_OPTIONAL_COLUMNS: frozenset[str] = frozenset({"detail_desc"})

CUSTOMER_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "FN",
    "Active",
    "club_member_status",
    "fashion_news_frequency",
    "age",
    "postal_code",
)

TRANSACTION_COLUMNS: tuple[str, ...] = (
    "t_dat",
    "customer_id",
    "article_id",
    "price",
    "sales_channel_id",
)

SALES_CHANNELS: frozenset[int] = frozenset({1, 2})

# Share of transaction rows whose article is missing from the catalogue that we accept
# (real extracts are sometimes cut from a bigger catalogue); above it the files don't match.
UNKNOWN_ARTICLE_TOLERANCE = 0.001
