"""A turn: the AI's answer to one question, from claim to end.

- chat.turns.actions: what a tab may ask (send, edit, regenerate, continue, stop, cancel);
- chat.turns.claims: each transition in the database, one conditional write;
- chat.turns.supervisor: who owns a turn, step by step, and starts the next;
- chat.turns.stop: Stop, heard from the turn's first moment;
- chat.turns.watchdog: replies nobody is writing any more, queues nobody started.

Turns depend on the domain (chat.models, chat.services, chat.selectors), never
the other way round.
"""
