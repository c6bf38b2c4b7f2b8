// The gridcase command-center console (一图纵览): one page, served by `gridcase serve` itself,
// talking to the API through gRPC-Web on the same origin.
import "./app.css";
import { render } from "preact";
import { getLang } from "./i18n";
import { App } from "./ui/App";

document.documentElement.lang = getLang() === "zh" ? "zh-CN" : "en";
render(<App />, document.getElementById("app")!);
