import { useEffect, useRef, useState } from "preact/hooks";
import { Code, ConnectError } from "@connectrpc/connect";
import type { WhoAmIResponse } from "../gen/gridcase/v1/directory_pb";
import { directory, getToken, setToken, setUnauthenticatedHandler, tokenExpiry } from "../api";
import { onLang, t } from "../i18n";
import { store } from "../store";
import { SignIn } from "./SignIn";
import { Console } from "./Console";

type Phase = "checking" | "signin" | "in";

export function App() {
  const [, setTick] = useState(0);
  useEffect(() => onLang(() => setTick((x) => x + 1)), []);
  const [phase, setPhase] = useState<Phase>(getToken() ? "checking" : "signin");
  const [who, setWho] = useState<WhoAmIResponse | null>(null);
  const [reason, setReason] = useState("");
  const phaseRef = useRef<Phase>(phase);
  phaseRef.current = phase;

  const signOut = (why: string) => {
    setToken("");
    store.clear();
    setWho(null);
    setReason(why);
    setPhase("signin");
  };

  useEffect(() => {
    // Any answer refusing the token while signed in returns to sign-in with the reason.
    setUnauthenticatedHandler((raw) => {
      if (phaseRef.current === "in") signOut(`${t("signin_expired")} (${raw})`);
    });
  }, []);

  const tryToken = async (tok: string): Promise<string | null> => {
    setToken(tok);
    try {
      const w = await directory.whoAmI({});
      performance.mark("console:signed-in");
      setWho(w);
      setReason("");
      setPhase("in");
      return null;
    } catch (e) {
      setToken("");
      const err = ConnectError.from(e);
      const refused = err.code === Code.Unauthenticated || err.code === Code.PermissionDenied;
      const expired = refused && /expired/i.test(err.rawMessage);
      return `${expired ? t("signin_token_expired") : refused ? t("signin_refused") : t("signin_unreachable")}: ${err.rawMessage}`;
    }
  };

  useEffect(() => {
    if (phase !== "checking") return;
    void tryToken(getToken()).then((err) => {
      if (err) {
        setReason(err);
        setPhase("signin");
      }
    });
  }, []);

  // Sign out when the token runs out, rather than on the next refused call.
  useEffect(() => {
    if (phase !== "in") return;
    const exp = tokenExpiry(getToken());
    if (!exp) return;
    const ms = exp.getTime() - Date.now();
    if (ms > 2 ** 31 - 1) return;
    const id = setTimeout(() => signOut(t("signin_expired")), Math.max(0, ms));
    return () => clearTimeout(id);
  }, [phase]);

  if (phase === "checking") return <main class="splash">{t("signin_checking")}</main>;
  if (phase === "signin" || !who) return <SignIn reason={reason} onSubmit={tryToken} />;
  return <Console who={who} onSignOut={() => signOut("")} />;
}
