"""Webhooks: signed notices of jobs and sweeps that ended, sent to each tenant's endpoints.

- ``urls``: where a webhook may be sent (https, or http where allowed; never a loopback,
  private, link-local or metadata address, checked when an endpoint is created and again,
  after resolving its name, before each delivery)."""
