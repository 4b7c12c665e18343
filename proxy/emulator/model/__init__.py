"""What the emulated PandaDoc workspace holds: documents, templates, contacts, members,
folders and webhooks, each in a small in-memory store with the JSON shapes of PandaDoc's
answers (the SDK's models and PandaDoc's OpenAPI specification give the field names)."""
