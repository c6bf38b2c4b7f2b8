import { useState } from "preact/hooks";
import { t, getLang, setLang } from "../i18n";

export function SignIn({ reason, onSubmit }: { reason: string; onSubmit: (token: string) => Promise<string | null> }) {
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const submit = async (e: Event) => {
    e.preventDefault();
    const tok = token.trim().replace(/^Bearer\s+/i, "");
    if (!tok) {
      setError(t("signin_empty"));
      return;
    }
    setBusy(true);
    setError("");
    const err = await onSubmit(tok);
    setBusy(false);
    if (err) setError(err);
  };
  const shown = error || reason;
  return (
    <main class="signin" data-testid="signin">
      <form class="signin-card" onSubmit={submit}>
        <div class="signin-head">
          <div>
            <h1>{t("app_title")}</h1>
            <p class="sub">{t("app_subtitle")}</p>
          </div>
          <button type="button" class="link" data-testid="lang-switch" onClick={() => setLang(getLang() === "zh" ? "en" : "zh")}>
            {t("lang_switch")}
          </button>
        </div>
        <h2>{t("signin_title")}</h2>
        {shown ? (
          <div class="error" role="alert" data-testid="signin-error">
            {shown}
          </div>
        ) : null}
        <label for="token">{t("signin_token")}</label>
        <textarea
          id="token"
          data-testid="signin-token"
          rows={5}
          spellcheck={false}
          autocomplete="off"
          value={token}
          onInput={(e) => setToken((e.target as HTMLTextAreaElement).value)}
          placeholder="eyJ…"
        />
        <p class="hint">{t("signin_token_hint")}</p>
        <button type="submit" class="primary" data-testid="signin-submit" disabled={busy}>
          {busy ? t("signin_checking") : t("signin_submit")}
        </button>
        <div class="demo">
          <p>{t("signin_demo")}</p>
          <pre>
            <code>gridcase token --sub disp-371102 --role dispatcher</code>
          </pre>
          <p class="hint">{t("signin_demo_more")}</p>
        </div>
      </form>
    </main>
  );
}
