"""The ERP integration API, `/api/v1`: products, contracts, the monthly statement."""
