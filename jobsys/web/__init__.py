"""The web process: admin UI and JSON API (design 4.4, 5). It never executes a job.

app       create_app(): routes, middleware, error handlers
api       the JSON API's handlers and route list
auth      sessions, API tokens, CSRF, roles, login rate limit
events    Server-Sent Events fed by polling the database
openapi   the OpenAPI 3.1 description
pages     the UI's static files and single-page fallback
serve     uvicorn (``jobsys web``)
"""
