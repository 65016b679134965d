"""The HTTP service: ERP API, Mercado Pago webhooks, portal, health and metrics."""
