"""Scenario 5's model side: the ``stream_completion`` activity and the models it asks.

``activity`` streams one answer into the conversation's stream; ``offline``
is the built-in model (no key, no network); ``remote`` any OpenAI-compatible
server; ``worker`` builds the llm-worker; ``history`` reads answers and their
cost back from a conversation's workflow history.
"""
