"""Actions: the assistant acting on an organization's own systems (order status, cancel an
order, change an address) through HTTPS endpoints the organization defines in admin.

- models: AssistantAction, one endpoint with its inputs, authentication, timeout and replies.
- calls: when an action fits a turn, which inputs are still missing, the call itself (audited
  with its inputs and outcome, secrets masked) and the reply made from its result."""
