"""Schemathesis hooks for the control API run (loaded by tests/schemathesis/run via SCHEMATHESIS_HOOKS).

The export answers a YAML stream, one document per App ID and resource separated by `---`; schemathesis'
own YAML reader takes exactly one document and fails on a stream. This reader takes both: one document
reads as itself (a resource fetched with `Accept: application/yaml`), a stream as the list of its documents.
"""

import schemathesis
import yaml


# Every YAML media type schemathesis reads, so that its own reader (registered under each) is replaced.
@schemathesis.deserializer("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/vnd.yaml")
def yaml_documents(ctx, response):
    text = response.content.decode(response.encoding or "utf-8")
    documents = list(yaml.safe_load_all(text))
    return documents[0] if len(documents) == 1 else documents
