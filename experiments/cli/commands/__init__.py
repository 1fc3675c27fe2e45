"""One module per `wlf` subcommand, each exposing ``register(subparsers)``: parse the arguments,
call one library function, print or plot. What is worth testing lives in the library."""
