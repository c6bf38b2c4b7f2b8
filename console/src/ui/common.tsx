import type { ComponentChildren } from "preact";
import { CaseStatus, SlaState } from "../gen/gridcase/v1/case_pb";
import { SLA_COLORS, slaName, slaText, statusName, statusText } from "../format";

export function SlaBadge({ s }: { s: SlaState }) {
  return (
    <span class={`badge sla sla-${slaName(s)}`} style={{ "--c": SLA_COLORS[s] }}>
      <i class={`shape shape-${slaName(s)}`} aria-hidden="true" />
      {slaText(s)}
    </span>
  );
}

export function StatusBadge({ s }: { s: CaseStatus }) {
  return <span class={`badge status status-${statusName(s)}`}>{statusText(s)}</span>;
}

export function Field({ label, children, wide }: { label: string; children: ComponentChildren; wide?: boolean }) {
  return (
    <div class={wide ? "field wide" : "field"}>
      <dt>{label}</dt>
      <dd>{children}</dd>
    </div>
  );
}

export function ErrorBox({ text, detail }: { text: string; detail?: string }) {
  return (
    <div class="error" role="alert" data-testid="error">
      <p>{text}</p>
      {detail ? <p class="more">{detail}</p> : null}
    </div>
  );
}

/** Case ids are UUIDs; show their head, full text on hover. */
export function ShortId({ id }: { id: string }) {
  return (
    <code title={id} class="id">
      {id.slice(0, 8)}
    </code>
  );
}
