"""{{name}}: a cairn validator written in Python.

Build:  ./build.sh            (writes target/{{crate}}.wasm)
Run:    cairn validate target/{{crate}}.wasm --change samples/clean/change
"""

from cairn_plugin import Refusal, log, plugin_info
from cairn_plugin.validator import Change, Checkpoint, error, export_validator, verdict


class NoEmptyDocuments:
    def info(self):
        return plugin_info("{{name}}", "0.1.0", "Fails when an added or modified document is empty")

    def validate(self, change: Change, at: Checkpoint, config: str):
        if config.strip() not in ("", "{}"):
            raise Refusal("this plugin takes no config")
        log.info(f"checking {at.change_id} at {at.name}")
        findings = [
            error("{{name}}/empty-document", f"{doc.path} is empty", document=doc.path,
                  hint="delete the document instead of emptying it")
            for doc in change.documents()
            if (doc.is_added or doc.is_modified) and change.after(doc.path) == b""
        ]
        return verdict(findings, f"{len(findings)} empty document(s)")


Validation = export_validator(NoEmptyDocuments())
