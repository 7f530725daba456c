"""Review in the browser: ``gristmill review RUN`` serves one self-contained page (page.html) on 127.0.0.1 with a
token (server.py); each accept, reject, edit or rescue is a line of ``<run>/review/decisions.jsonl``
(decisions.py), which the next curate applies in mix through ``mix.review`` (apply.py)."""
