"""Chess games as chess-GPT transcripts: engine-generated demo games, or Lichess from manual_dir."""
