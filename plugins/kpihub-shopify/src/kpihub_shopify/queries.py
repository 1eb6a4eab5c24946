"""The GraphQL documents the streams send (Admin API; field names from shopify.dev's object pages).

Each connection is aliased ``page`` so one reader pages every stream. ``sortKey: UPDATED_AT``
with the ``updated_at`` search filter makes each read incremental; ``first`` and ``after`` page.
Money is read in ``shopMoney``, the shop's currency: ``presentmentMoney`` is the buyer's, and
mixing the two would add amounts in different currencies.
"""

from __future__ import annotations

_PAGE = "page: {connection}(first: $first, after: $after, query: $query, sortKey: UPDATED_AT)"
_VARS = "($first: Int!, $after: String, $query: String)"

ORDERS = f"""query Orders{_VARS} {{
  {_PAGE.format(connection="orders")} {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{
      id name createdAt processedAt updatedAt cancelledAt cancelReason test displayFinancialStatus
      customer {{ id }}
      totalPriceSet {{ shopMoney {{ amount currencyCode }} }}
      totalReceivedSet {{ shopMoney {{ amount currencyCode }} }}
      totalRefundedSet {{ shopMoney {{ amount currencyCode }} }}
    }}
  }}
}}"""

# Shopify has no top-level refunds connection: refunds are read from their orders, which a refund
# updates (the order's updatedAt moves), so the orders' updated_at filter finds new refunds too.
REFUNDS = f"""query Refunds{_VARS} {{
  {_PAGE.format(connection="orders")} {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{
      id updatedAt test
      customer {{ id }}
      refunds {{ id createdAt updatedAt totalRefundedSet {{ shopMoney {{ amount currencyCode }} }} }}
    }}
  }}
}}"""

# defaultEmailAddress replaced the deprecated Customer.email in 2025-04 (shopify.dev changelog
# "Adding defaultEmailAddress field to customer"); numberOfOrders is an UnsignedInt64: a string.
CUSTOMERS = f"""query Customers{_VARS} {{
  {_PAGE.format(connection="customers")} {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{
      id createdAt updatedAt numberOfOrders
      defaultEmailAddress {{ emailAddress }}
      amountSpent {{ amount currencyCode }}
    }}
  }}
}}"""

SHOP = "query Shop { shop { id name myshopifyDomain currencyCode ianaTimezone } }"
