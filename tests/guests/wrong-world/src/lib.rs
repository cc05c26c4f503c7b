//! Exports `exchange`, but with a signature of another world.

wit_bindgen::generate!({
    inline: "
        package test:wrong-world;
        world hook {
            export exchange: func(audience: string) -> string;
        }
    ",
});

struct WrongWorld;

impl Guest for WrongWorld {
    fn exchange(audience: String) -> String {
        audience
    }
}

export!(WrongWorld);
