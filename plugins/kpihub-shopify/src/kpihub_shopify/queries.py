"""The GraphQL documents the streams send (Admin API; field names from shopify.dev's object pages).

Each stream selects one set of node fields (:class:`Read`) and sends it two ways: a page of the
connection aliased ``page`` (so one reader pages every stream), or the whole connection as a bulk
operation's query (:mod:`kpihub_shopify.bulk`). The same fields either way, so both paths give the
same records. ``sortKey: UPDATED_AT`` with the ``updated_at`` search filter makes each paged read
incremental; ``first`` and ``after`` page. Money is read in ``shopMoney``, the shop's currency:
``presentmentMoney`` is the buyer's, and mixing the two would add amounts in different currencies.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

_PAGE = "page: {connection}(first: $first, after: $after, query: $query, sortKey: UPDATED_AT)"
_VARS = "($first: Int!, $after: String, $query: String)"


@dataclass(frozen=True)
class Read:
    """One stream's selection on a root connection (``orders``, ``customers``)."""

    name: str
    connection: str
    fields: str

    @property
    def page(self) -> str:
        """The paged query: ``first`` / ``after`` / ``query`` variables, ``pageInfo`` and ``nodes``."""
        return f"""query {self.name}{_VARS} {{
  {_PAGE.format(connection=self.connection)} {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{ {self.fields} }}
  }}
}}"""

    def bulk(self, search: str | None) -> str:
        """The query of a bulk operation over the whole connection, filtered by ``search``.

        A bulk query takes no variables, so the filter is a string literal (JSON's escaping is
        GraphQL's for these characters). Shopify pages it itself: no ``first``, no ``pageInfo``
        (shopify.dev/docs/api/usage/bulk-operations/queries). Its fields hold no nested
        connection (``refunds`` is a list, which arrives inside its order's line), so the JSONL
        has one line per node and no ``__parentId`` children.
        """
        args = f"(query: {orjson.dumps(search).decode()})" if search else ""
        return f"{{ {self.connection}{args} {{ edges {{ node {{ {self.fields} }} }} }} }}"


_MONEY = "{ shopMoney { amount currencyCode } }"

# totalTaxSet: the order's taxes in shop money (shopify.dev, Order.totalTaxSet), for orders.tax_amount.
ORDERS = Read(
    "Orders",
    "orders",
    "id name createdAt processedAt updatedAt cancelledAt cancelReason test displayFinancialStatus "
    f"customer {{ id }} totalPriceSet {_MONEY} totalReceivedSet {_MONEY} totalRefundedSet {_MONEY} "
    f"totalTaxSet {_MONEY}",
)

# Shopify has no top-level refunds connection: refunds are read from their orders, which a refund
# updates (the order's updatedAt moves), so the orders' updated_at filter finds new refunds too.
REFUNDS = Read(
    "Refunds",
    "orders",
    f"id updatedAt test customer {{ id }} refunds {{ id createdAt updatedAt totalRefundedSet {_MONEY} }}",
)

# defaultEmailAddress replaced the deprecated Customer.email in 2025-04 (shopify.dev changelog
# "Adding defaultEmailAddress field to customer"); numberOfOrders is an UnsignedInt64: a string.
CUSTOMERS = Read(
    "Customers",
    "customers",
    "id createdAt updatedAt numberOfOrders defaultEmailAddress { emailAddress } amountSpent { amount currencyCode }",
)

SHOP = "query Shop { shop { id name myshopifyDomain currencyCode ianaTimezone } }"

# -- bulk operations (shopify.dev/docs/api/usage/bulk-operations/queries) ---------------------------

#: ``code`` is BulkOperationUserErrorCode: INVALID, LIMIT_REACHED, OPERATION_IN_PROGRESS.
RUN_BULK = """mutation RunBulkQuery($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status createdAt }
    userErrors { field message code }
  }
}"""

_OPERATION = "id status errorCode createdAt completedAt objectCount rootObjectCount fileSize url partialDataUrl"
#: From 2026-01, ``bulkOperation(id:)`` (shopify.dev changelog "New Queries for Bulk Operations",
#: which deprecates ``currentBulkOperation``); before it, the operation as a ``node``. Both ask for
#: this operation by id, so another client's operation never answers for ours.
POLL_BULK = f"query BulkOperation($id: ID!) {{ bulkOperation(id: $id) {{ {_OPERATION} }} }}"
POLL_BULK_NODE = f"query BulkOperation($id: ID!) {{ node(id: $id) {{ ... on BulkOperation {{ {_OPERATION} }} }} }}"

CANCEL_BULK = """mutation CancelBulkOperation($id: ID!) {
  bulkOperationCancel(id: $id) { bulkOperation { id status } userErrors { field message } }
}"""
