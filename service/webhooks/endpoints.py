"""``/v1/webhooks``: HTTP in and out only; the use cases are in ``service.webhooks.service``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from fitq.schemas import (
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryList,
    WebhookDeliveryRead,
    WebhookList,
    WebhookRead,
)
from service.deps import Context, Tenant
from service.openapi import errors
from service.webhooks import service

JSON = "application/json"
router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

Limit = Annotated[int, Query(ge=1, le=100)]
After = Annotated[str | None, Query(max_length=200)]


@router.post("", status_code=201, response_model=WebhookCreated, responses=errors(409, 422))
def create_webhook(body: WebhookCreate, ctx: Context, tenant: Tenant) -> Response:
    """An endpoint that ``events`` are POSTed to, signed as Standard Webhooks lays out
    (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``). The answer holds the
    signing ``secret``, shown this once."""
    endpoint_id, document = service.create_endpoint(ctx, tenant, body)
    headers = {"Location": f"/v1/webhooks/{endpoint_id}"}
    return Response(document, status_code=201, media_type=JSON, headers=headers)


@router.get("", response_model=WebhookList, responses=errors(422))
def list_webhooks(ctx: Context, tenant: Tenant, limit: Limit = 20, after: After = None) -> Response:
    return Response(service.list_endpoints(ctx, tenant, limit, after), media_type=JSON)


@router.get("/{webhook_id}", response_model=WebhookRead, responses=errors(404))
def get_webhook(webhook_id: str, ctx: Context, tenant: Tenant) -> Response:
    return Response(service.read_endpoint(ctx, tenant, webhook_id), media_type=JSON)


@router.delete("/{webhook_id}", status_code=204, responses=errors(404))
def delete_webhook(webhook_id: str, ctx: Context, tenant: Tenant) -> Response:
    """The endpoint and its deliveries: nothing more is sent to it, retries included."""
    service.delete_endpoint(ctx, tenant, webhook_id)
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/test",
    status_code=202,
    response_model=WebhookDeliveryRead,
    responses=errors(404),
)
def test_webhook(webhook_id: str, ctx: Context, tenant: Tenant) -> Response:
    """A ``webhook.test`` event to the endpoint, signed, retried and listed as any: the
    delivery as written (its attempts follow in ``/deliveries``)."""
    return Response(service.send_test(ctx, tenant, webhook_id), 202, media_type=JSON)


@router.get(
    "/{webhook_id}/deliveries", response_model=WebhookDeliveryList, responses=errors(404, 422)
)
def list_deliveries(
    webhook_id: str, ctx: Context, tenant: Tenant, limit: Limit = 20, after: After = None
) -> Response:
    """The endpoint's deliveries, newest first, each with every attempt: its answer, or why
    there was none, and when the next one is due."""
    page = service.list_deliveries(ctx, tenant, webhook_id, limit, after)
    return Response(page, media_type=JSON)
