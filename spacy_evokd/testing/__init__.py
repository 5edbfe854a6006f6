"""Test doubles at the network boundary, shared by the test suite and the benchmarks:

  server.py             FakeOpenAIServer, a local OpenAI-compatible chat-completions server
  responder.py          PoolResponder, the pool-backed "LLM" behind it (answers the real prompts)
  fake_llama_server.py  a stand-in for the `llama-server` binary (local_server start/stop tests)

Nothing here is imported by the package itself (``spacy_evokd/__init__.py`` must stay light):
import the modules by name. server.py and fake_llama_server.py use the standard library only.
"""
