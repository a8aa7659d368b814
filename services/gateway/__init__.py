"""The HTTP gateway (issue 14): the API as JSON, OpenAPI and Open311, for platforms without AMQP."""
