// Added by setup/dashboard.sh to the dashboard build (not part of upstream).
//
// @monaco-editor/react fetches the Monaco editor from a public CDN unless it
// is handed an instance. The dashboard here must work without the internet,
// so the editor (only the trigger-run form uses it) is bundled from the
// monaco-editor package the lockfile already holds: the editor core plus the
// JSON language (the only one the dashboard edits) and their workers.
import { loader } from '@monaco-editor/react';
import * as monaco from 'monaco-editor/esm/vs/editor/editor.api.js';
import EditorWorker from 'monaco-editor/esm/vs/editor/editor.worker.js?worker';
import * as json from 'monaco-editor/esm/vs/language/json/monaco.contribution.js';
import JsonWorker from 'monaco-editor/esm/vs/language/json/json.worker.js?worker';

// monaco-editor's full entry (editor.main.js) attaches each language it
// bundles the same way; code-editor.tsx reads monaco.languages.json.
Object.assign(monaco.languages, { json });

self.MonacoEnvironment = {
  getWorker(_workerId: string, label: string) {
    return label === 'json' ? new JsonWorker() : new EditorWorker();
  },
};

loader.config({
  monaco: monaco as unknown as Parameters<typeof loader.config>[0]['monaco'],
});
